"""Network architectures of the ASNA paper (no I/O, no validation)."""
