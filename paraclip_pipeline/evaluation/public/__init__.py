"""Public benchmarks nobody on this project wrote: caption groups (COCO / Flickr30k Karpathy
captions), SugarCrepe++, PAWS, MRPC and STS-B, scored for a model and its baseline with
paired bootstrap intervals on every delta (``paraclip evaluate``, ``benchmark_report``)."""
