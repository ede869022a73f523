"""The analyses themselves: one module per diagnostic or shared computation."""
