"""How jobs run: here, on Ray, as background processes; and the pipelines built from them."""
