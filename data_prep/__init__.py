"""Reading, validating, generating and packaging challenge-format data."""
