"""Research beside the product: one-off probes and experiments (research/README.md says what each asked and found).
Run one with `python -m research.<name>`. The product (modeling_codectrace, codectrace, dataset_scripts, codec_zoo,
space, benchmarks, train.py) never imports this package; a probe may import the product."""
