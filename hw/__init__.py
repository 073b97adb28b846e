"""mulfree.hw."""
