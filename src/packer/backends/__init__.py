"""Built-in pack formats: one module per backend, each with its writer and reader."""
