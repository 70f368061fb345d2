"""fakevlm: a forensic command-line toolkit around the FakeVLM real/fake image detector."""

__version__ = "0.1.0"
