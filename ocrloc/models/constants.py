"""Constants every model family shares: one place, so the families cannot drift apart.

There is no class or keypoint count here: those come from the data (:class:`ocrloc.data.task.Task`).
"""

# Grey MNIST canvases are mostly background: normalise with the statistics of canvas128 pixels
# so the network sees zero-mean input while every predictor still takes [0, 1] images.
PIXEL_MEAN = 0.018
PIXEL_STD = 0.117
