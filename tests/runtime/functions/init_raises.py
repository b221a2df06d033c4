raise RuntimeError("failed during init")
