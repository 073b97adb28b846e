"""mulfree.boards."""
