"""Models: the family contract (family.py), build(), the shared trunk, and each family's model, criterion and predictor."""
