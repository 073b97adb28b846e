"""mulfree.cli: the ``mulfree`` command line, one module per command group.

The top of the house: it may import every other room (gen, hw, sim, boards, compare), and
none of them imports it. :mod:`.main` holds the registry of commands.
"""
