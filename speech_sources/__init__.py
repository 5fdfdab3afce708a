"""The speech that CodecFake-mini is made of: synthetic speakers (`mini_speech`: espeak-ng and festival voices) and
real recorded voices from Debian packages (`real_speech`). Both the codec zoo (its codecs' training speech) and the
corpus builders (`dataset_scripts`) import it; it imports neither."""
