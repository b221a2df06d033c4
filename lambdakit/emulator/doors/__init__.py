"""Front doors: turn requests into Invocations and results into replies."""
