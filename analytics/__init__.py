"""Analytics: reference datasets (class averages, variability, differences, montages), model
performance from each model card, and field performance from clinicians' reviews."""
