#!/usr/bin/python3
"""The forward pass of an nntrain network exported with `scripts/export_model.py CK --npz M.npz`,
in NumPy alone (float32, as nntrain computes it):

    import numpy as np, model_numpy
    model = model_numpy.load("M.npz")
    probs = model_numpy.forward(model, model_numpy.pixels(images))   # images: uint8 [N, 28, 28]
    predicted = probs.argmax(axis=1)                                  # the class, as nneval picks it

Input: one row per sample, the uint8 pixels flattened row-major to widths[0] values and scaled
as nntrain scales them: float32(pixel) * float32(1/255) (the npz's `input_scale`), so 0..1.
Output: [N, classes] probabilities -- softmax of the last layer (loss softmax), or the sigmoid
of each output unit (loss mse; they need not sum to 1).
The .npz holds weight1, bias1, ..., weightK, biasK (float32 [in, out] and [out]), widths,
activation (sigmoid|relu|tanh, after every layer but the last), output (softmax|sigmoid),
input_scale, and format ("nntrain-export 1"); np.load needs no pickle.
"""
import numpy as np

ACTIVATIONS = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}


def load(path):
    with np.load(path, allow_pickle=False) as f:
        return {name: f[name] for name in f.files}


def pixels(images, scale=np.float32(1 / 255)):
    """uint8 images [N, ...] -> the float32 [N, width] rows nntrain feeds its first layer."""
    images = np.asarray(images, dtype=np.uint8)
    return images.reshape(len(images), -1).astype(np.float32) * np.float32(scale)


def forward(model, x):
    """x: float32 [N, widths[0]] (see pixels); returns float32 [N, classes] probabilities."""
    layers, act = len(model["widths"]) - 1, ACTIVATIONS[str(model["activation"])]
    with np.errstate(over="ignore"):  # exp(-z) = inf for very negative z: sigmoid 0, as it should
        for k in range(1, layers + 1):
            x = np.asarray(x, dtype=np.float32) @ model[f"weight{k}"] + model[f"bias{k}"]
            if k < layers:
                x = act(x)
        if str(model["output"]) == "sigmoid":
            return ACTIVATIONS["sigmoid"](x)
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
