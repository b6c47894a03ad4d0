"""Models: timm backbone -> FPN neck -> dense heads; criterion and postprocess beside them."""
