"""The fraud model: feature declarations, training, evaluation, registry and scoring."""
