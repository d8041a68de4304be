"""Prints, as JSON, what the real `tensorboard` package reads in an event file
(or a folder of them): through EventAccumulator, as TensorBoard's own
dashboards do, every scalar and image with its step and wall time; through the
legacy loader (the events as stored, before their migration to tensor
summaries), the file versions and each image's colorspace, which the
accumulator does not expose.

Usage: python read_tensorboard.py PATH
"""

import base64
import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

path = sys.argv[1]
# 0: keep every event (the default samples scalars down to 10,000 and images to 4).
acc = EventAccumulator(path, size_guidance={"scalars": 0, "images": 0})
acc.Reload()
tags = acc.Tags()

files = sorted(os.path.join(path, f) for f in os.listdir(path)) if os.path.isdir(path) else [path]
file_versions, colorspaces = [], {}
for file in files:
    for event in LegacyEventFileLoader(file).Load():
        if event.HasField("file_version"):
            file_versions.append(event.file_version)
        for value in event.summary.value:
            if value.HasField("image"):
                colorspaces.setdefault(value.tag, []).append(value.image.colorspace)

print(json.dumps({
    "fileVersions": file_versions,
    "scalars": {
        tag: [{"step": e.step, "value": e.value, "wallTime": e.wall_time} for e in acc.Scalars(tag)]
        for tag in tags["scalars"]
    },
    "images": {
        tag: [
            {
                "step": e.step,
                "wallTime": e.wall_time,
                "width": e.width,
                "height": e.height,
                "png": base64.b64encode(e.encoded_image_string).decode("ascii"),
            }
            for e in acc.Images(tag)
        ]
        for tag in tags["images"]
    },
    "colorspaces": colorspaces,
}))
