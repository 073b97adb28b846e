"""mulfree.sim."""
