"""Usage billing: raw metrics -> SQL collectors -> usage events -> billing API, exactly once."""
