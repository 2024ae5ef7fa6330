"""Faithfulness metrics beyond the deletion/insertion curves: ROAD, MoRF/LeRF, average drop, increase in confidence,
faithfulness correlation and infidelity."""
