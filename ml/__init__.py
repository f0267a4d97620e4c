"""BrainScan's model pipeline: data, preprocessing, training, evaluation, serving.

Plain Python + Keras 3 (TensorFlow backend). Nothing here imports Django.
"""
