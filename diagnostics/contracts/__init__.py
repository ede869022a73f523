"""What every diagnostic agrees on: the job shape, the registry, the result kinds."""
