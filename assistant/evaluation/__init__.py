"""Evaluation harness behind ``assistant eval`` (cases in ``eval/``, reports in ``--out``)."""
