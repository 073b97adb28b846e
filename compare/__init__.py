"""mulfree.compare: what each arithmetic scheme costs, measured with Yosys and nextpnr.

The sweep over points (:mod:`.sweep`), analytic estimates (:mod:`.estimate`) and the report
(:mod:`.report`). Imports gen, hw and boards' synthesis flow; nothing imports it but the CLI.
"""
