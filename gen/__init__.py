"""mulfree.gen."""
