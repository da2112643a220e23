"""A collector that needs no hardware: a simulated household, for laptops, demos and CI."""
