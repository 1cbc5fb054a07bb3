"""Two-step paraphrasing: prompts, LLM backends, answer hygiene and the content-addressed cache."""
