"""CodecFake-mini's codec zoo: small neural audio codecs spanning the CodecFake+ taxonomy (see specs.py)."""
