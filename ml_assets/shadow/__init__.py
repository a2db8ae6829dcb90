"""Shadow data: a generative model of the landed raw data, and generated days that pass fidelity and privacy gates.

Development environments may not hold production rows, yet need data that behaves like them. ``shadow_model``
learns every column of the spec (conditioned on the time of a row, so shadow days drift like real ones) where the
production data lives; ``shadow_data`` generates days in the landed format and judges them: fidelity warns,
privacy blocks. Only days that passed leave the environment (``ml-assets shadow export``).
"""
