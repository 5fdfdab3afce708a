"""Scripts that build CodecFake+ (and its offline replicas) into Hugging Face datasets."""
