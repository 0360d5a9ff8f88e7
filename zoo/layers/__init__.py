"""Plain torch probabilistic building blocks (no Lightning)."""
