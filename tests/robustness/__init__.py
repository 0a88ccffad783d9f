"""Regression tests of the fault sweep (issue 25): output folders of pack / export, engine builds."""
