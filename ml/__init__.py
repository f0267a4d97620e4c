"""BrainScan's model pipeline: data, preprocessing, training, evaluation, serving.

Plain Python: Keras 3 on TensorFlow to train, evaluate and export; the models' LiteRT export
to serve (ai-edge-litert, no TensorFlow). Nothing here imports Django.
"""
