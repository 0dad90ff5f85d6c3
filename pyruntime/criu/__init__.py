"""checkpoint and restore: CRIU driven over its RPC interface (`criu swrk`).

rpc.py speaks to CRIU; options.py turns a container's config and the verb's flags into
CRIU's options; dump.py and restore.py are the two verbs' orchestration.
"""
