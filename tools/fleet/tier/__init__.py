"""The regional telemetry tier: droplets, stores and aggregator of one region, from region.yaml `tier:`.

model.py turns the region file into a typed `Tier` (defaults filled in) and checks the cross-file
input rules; clickhouse.py, vector.py and render.py turn it into rendered/regions/<region>/.
"""
