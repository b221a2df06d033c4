"""The local Lambda service behind ``lambdakit serve``."""
