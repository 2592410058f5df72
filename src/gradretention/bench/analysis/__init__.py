"""The analysis side of the harness: which runs may be compared, and what they show.

``analyse``     one GroupAnalysis per comparison group: everything below, computed once
``setups``      comparison groups: runs that share one setup (never pooled across setups)
``facts``       per-task facts the statistics need: test-set size, chance level, targets
``verdicts``    paired comparisons against the reference baseline, with Holm and SE_test
``sensitivity`` lr-sensitivity width in decades, with its bootstrap CI over tuning seeds
``claims``      the seed claims: each method against the baseline rule it modifies
``alpha``       hypergradient honesty: α movement flags and trajectories
``convergence`` steps and seconds to target; best-so-far validation for the budget protocol
``protocol``    the protocol text of a group, from the store's selections
``caveats``     the warnings a reader needs, computed from the runs
"""
