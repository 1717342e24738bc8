"""The standard TFLite metadata of an image segmenter, which MediaPipe Tasks' `ImageSegmenter`
(Android, iOS, web, Python) and the TFLite Task Library read.

Example::

    data = with_segmenter_metadata(tflite_bytes, name="mobileunet", description="...",
                                   labels=["background", "hair"], version="1",
                                   author="mobileseg-zoo", license="Apache-2.0")
    read_segmenter_metadata(path)   # {"name": ..., "labels": [...], "mean": [0.0], ...}

What is written, as MediaPipe's own ``image_segmenter`` metadata writer lays it out
(`mediapipe/tasks/python/metadata/metadata_writers`): a ``TFLITE_METADATA`` buffer (file
identifier ``M001``) with the model's name, description, version, author and licence; the input
as an RGB image whose NormalizationOptions say how to get from 0..255 pixels to the tensor
(mean 0 and std 1: the zoo's models scale inside the graph, so the raw pixels are the input);
the output as a GRAYSCALE mask image with the class labels as a ``TENSOR_AXIS_LABELS``
associated file, packed as a zip archive appended to the flatbuffer.

MediaPipe 1.2's writers themselves cannot be imported from its wheel (their version check is a
native module, ``mediapipe.tasks.cc.metadata.python._pywrap_metadata_version``, that the wheel
does not ship), so the tables are built here with the flatbuffers schema code generated from
``metadata_schema.fbs``, which the wheel does ship. Only fields of schema version 1.0.0 are used,
which is what ``min_parser_version`` says.
"""

from __future__ import annotations

import importlib.util
import io
import zipfile
from functools import cache
from pathlib import Path

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
TFLITE_IDENTIFIER = b"TFL3"
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"


@cache
def _schema():
    """The generated metadata schema module from the mediapipe wheel, loaded by path: importing
    the `mediapipe` package itself pulls in its whole runtime."""
    from zoo.errors import ConfigError

    spec = importlib.util.find_spec("mediapipe")
    path = Path(spec.origin).parent / "tasks" / "metadata" / "metadata_schema_py_generated.py" \
        if spec and spec.origin else None
    if path is None or not path.is_file():
        raise ConfigError("TFLite metadata needs mediapipe: pip install -e '.[export]'")
    module_spec = importlib.util.spec_from_file_location("zoo_tflite_metadata_schema", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _image_tensor(name: str, description: str, color_space: int):
    """Tensor metadata of an image (input picture or output mask) in `color_space`."""
    fb = _schema()
    tensor = fb.TensorMetadataT()
    tensor.name = name
    tensor.description = description
    tensor.content = fb.ContentT()
    tensor.content.contentProperties = fb.ImagePropertiesT()
    tensor.content.contentProperties.colorSpace = color_space
    tensor.content.contentPropertiesType = fb.ContentProperties.ImageProperties
    return tensor


def _metadata_buffer(*, name: str, description: str, version: str, author: str, license: str,
                     labels: list[str], input_dtype: str) -> bytes:
    import flatbuffers

    fb = _schema()
    image = _image_tensor("image", "RGB image, raw pixels 0..255 (the model scales them itself)",
                          fb.ColorSpaceType.RGB)
    normalization = fb.ProcessUnitT()
    normalization.optionsType = fb.ProcessUnitOptions.NormalizationOptions
    normalization.options = fb.NormalizationOptionsT()
    normalization.options.mean = [0.0]
    normalization.options.std = [1.0]
    image.processUnits = [normalization]
    image.stats = fb.StatsT()
    image.stats.min = [0.0] if input_dtype != "int8" else [-128.0]
    image.stats.max = [255.0] if input_dtype != "int8" else [127.0]

    mask = _image_tensor("segmentation_masks", "Per-pixel class scores (logits) or labels.",
                         fb.ColorSpaceType.GRAYSCALE)
    mask.content.range = fb.ValueRangeT()
    mask.content.range.min = 1  # the height and width dimensions of the output
    mask.content.range.max = 2
    label_file = fb.AssociatedFileT()
    label_file.name = LABELS_FILE
    label_file.description = "Labels for categories that the model can recognize."
    label_file.type = fb.AssociatedFileType.TENSOR_AXIS_LABELS
    mask.associatedFiles = [label_file]

    subgraph = fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [image]
    subgraph.outputTensorMetadata = [mask]
    model = fb.ModelMetadataT()
    model.name = name
    model.description = description
    model.version = version
    model.author = author
    model.license = license
    model.subgraphMetadata = [subgraph]
    model.minParserVersion = MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _model_parts(data: bytes) -> tuple[bytes, bytes]:
    """(flatbuffer, appended zip of associated files or b"")."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            start = min((i.header_offset for i in archive.infolist()), default=len(data))
        return data[:start], data[start:]
    return data, b""


def with_segmenter_metadata(data: bytes, *, name: str, description: str, version: str,
                            author: str, license: str, labels: list[str]) -> bytes:
    """`data` (a .tflite) with the standard segmenter metadata and its labels file (see the
    module docstring); an existing ``TFLITE_METADATA`` is replaced, other metadata kept."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    flat, _ = _model_parts(data)
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flat, 0))
    graph = model.subgraphs[0]
    input_type = graph.tensors[graph.inputs[0]].type
    dtype = {schema.TensorType.UINT8: "uint8", schema.TensorType.INT8: "int8"}.get(
        input_type, "float32")
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(_metadata_buffer(
        name=name, description=description, version=version, author=author, license=license,
        labels=labels, input_dtype=dtype), np.uint8)
    model.metadata = [m for m in (model.metadata or [])
                      if (m.name.decode() if isinstance(m.name, bytes) else m.name)
                      != METADATA_NAME]
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)

    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), TFLITE_IDENTIFIER)
    out = io.BytesIO(bytes(builder.Output()))
    out.seek(0, io.SEEK_END)
    # Associated files travel as a zip appended to the flatbuffer (MetadataPopulator's layout).
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr(LABELS_FILE, "\n".join(labels))
    return out.getvalue()


def read_segmenter_metadata(path: Path) -> dict:
    """The standard metadata of a .tflite as a dict: name, description, version, author,
    license, min_parser_version, input normalization (mean, std), input color space, output
    color space and the labels from the packed labels file ({} when there is none)."""
    from tensorflow.lite.python import schema_py_generated as schema

    data = Path(path).read_bytes()
    flat, packed = _model_parts(data)
    model = schema.Model.GetRootAsModel(flat, 0)
    fb = _schema()
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() != METADATA_NAME:
            continue
        raw = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
        meta = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(raw, 0))
        subgraph = meta.subgraphMetadata[0]
        image, mask = subgraph.inputTensorMetadata[0], subgraph.outputTensorMetadata[0]
        norm = image.processUnits[0].options
        def text(value):
            return value.decode() if isinstance(value, bytes) else value

        labels = []
        if packed:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                labels = archive.read(text(mask.associatedFiles[0].name)).decode().split("\n")

        return {"name": text(meta.name), "description": text(meta.description),
                "version": text(meta.version), "author": text(meta.author),
                "license": text(meta.license),
                "min_parser_version": text(meta.minParserVersion),
                "mean": [float(v) for v in norm.mean], "std": [float(v) for v in norm.std],
                "input_color_space": image.content.contentProperties.colorSpace,
                "output_color_space": mask.content.contentProperties.colorSpace,
                "labels": labels}
    return {}
