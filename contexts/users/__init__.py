"""Users: customers, their credentials and tokens."""
