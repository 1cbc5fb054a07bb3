"""Filter rules as versioned data, and their application to paraphrase pairs."""
