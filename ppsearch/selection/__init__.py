"""Selection and its statistics, read from a results table: the validation front a search selects,
hypervolume, the verdicts between configurations over seeds, racing's looks, picking one
configuration. The search decides with these; the reports draw what they decide. Nothing here
imports torch.
"""
