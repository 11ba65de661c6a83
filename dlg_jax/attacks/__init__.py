"""Gradient-inversion attacks. See `registry` for the list.

Layout: `registry` (names -> run, check, defaults); the attacks `dlg`, `idlg`,
`inverting` (IG), `dia` (DIA, WIIG), `analytic`; what they share: `losses`
(the one lane loss), `objectives` (its distances and priors), `labels` (label
recovery), `solvers` (L-BFGS and signed Adam, with their defaults), `lanes`
(victims × restarts) and `optimize` (the jitted loops).
"""
