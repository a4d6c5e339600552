"""Writes a MaxMind-format country database for the geo-fencing tests.

Usage: write_country_db.py OUT.mmdb CIDR=CC [CIDR=CC ...]
"""
import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet

writer = MMDBWriter(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
for pair in sys.argv[2:]:
    cidr, country = pair.split("=")
    writer.insert_network(IPSet([cidr]), {"country": {"iso_code": country}})
writer.to_db_file(sys.argv[1])
