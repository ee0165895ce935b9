"""Desired state + observed keys → a plan: the pure diff, the safety threshold, reviewed (saved) plans."""
