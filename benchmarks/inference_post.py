"""Section 4 of inference_speed.py: the time of instance post-processing against the network's."""

from __future__ import annotations

import cProfile
import pstats
from pathlib import Path

from inference_timing import interleaved, median_time
from synthetic_nuclei import nuclei, smooth_ideal_prediction

from napari_unet.functionals.instances import InstanceParams, instances_from_prediction
from napari_unet.functionals.prediction import Prediction
from napari_unet.nn.segmenter import Segmenter


def instance_stages(prediction: Prediction, params: InstanceParams, use_instance_heads: bool,
                    top: int = 4) -> dict[str, float]:
    """Seconds of the costliest functions inside `instances_from_prediction` (cProfile, own time).

    Profiling by function rather than copying the steps keeps this right as `instances` changes;
    numpy/scipy/skimage calls show under their own names. Profiling adds a little overhead.
    """
    profile = cProfile.Profile()
    profile.runcall(instances_from_prediction, prediction, params, use_instance_heads=use_instance_heads)
    stats = pstats.Stats(profile).stats  # {(file, line, name): (calls, ncalls, own, cumulative, callers)}
    own: dict[str, float] = {}
    for (file, _, name), (_, _, tottime, _, _) in stats.items():
        if file != "~":
            label = f"{Path(file).stem}.{name}"
        else:  # "<method 'argsort' of 'numpy.ndarray' objects>", "<built-in method ...label>"
            label = name.split("'")[1] if "'" in name else name.strip("<>").split(".")[-1]
        own[label] = own.get(label, 0.0) + tottime
    return dict(sorted(own.items(), key=lambda kv: -kv[1])[:top])


def post_share(segmenter: Segmenter, size: int, repeats: int) -> dict:
    image, labels = nuclei(size, seed=7)
    image = image[None]
    params = InstanceParams()
    model_prediction = segmenter.predict(image)
    ideal = smooth_ideal_prediction(labels)
    cases = [
        ("model prediction, this model's instance mode", model_prediction, segmenter.instance_heads_trained),
        ("ideal prediction, instance heads", ideal, True),
        ("ideal prediction, distance transform (untrained heads)", ideal, False),
    ]
    calls = {"predict": lambda: segmenter.predict(image)}
    for name, prediction, heads in cases:
        calls[name] = lambda p=prediction, h=heads: instances_from_prediction(p, params, use_instance_heads=h)
    times = interleaved(calls, repeats)
    total, network = times["predict"]
    rows = []
    for name, prediction, heads in cases:
        seconds = times[name][0]
        count = int(instances_from_prediction(prediction, params, use_instance_heads=heads).max())
        stages = instance_stages(prediction, params, heads)
        rows.append({"case": name, "instances_s": seconds, "objects": count, "share_of_predict": seconds / total,
                     "share_of_network": seconds / network, "stages": stages})
    semantic = median_time(model_prediction.semantic, repeats)
    return {"size": size, "true_objects": int(labels.max()), "predict_s": total, "network_s": network,
            "semantic_s": semantic, "rows": rows}
