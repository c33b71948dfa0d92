/* filter_path for admin answers, with Elasticsearch's semantics so operators' habits
 * carry over. */
#ifndef CL_JSON_FILTER_H
#define CL_JSON_FILTER_H
#include <jansson.h>

/* filter: comma-separated dotted paths, e.g. "metadata.cluster_coordination,nodes.*.name".
 * A segment may contain '*' (any run of characters within one key); a "**" segment
 * matches any number of levels. Arrays are transparent: a path continues into each
 * element. A path starting with '-' excludes what it matches (applied after the
 * inclusions, or to the whole document if there are none).
 * Returns a new reference: a document holding only the matching paths, {} when nothing
 * matches; a deep copy of doc when filter is NULL or empty. doc is not modified.
 * NULL only on out of memory or an unusable filter (too long / too many paths). */
json_t *cl_json_filter_path(json_t *doc, const char *filter);

#endif
