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
 * NULL only on out of memory or a filter that cl_json_filter_check refuses. */
json_t *cl_json_filter_path(json_t *doc, const char *filter);

/* The bounds on a filter: its length in characters, its number of paths (inclusions
 * and exclusions together) and the dotted parts of one path. */
#define CL_JSON_FILTER_MAX_LEN 4096
#define CL_JSON_FILTER_MAX_PATHS 64
#define CL_JSON_FILTER_MAX_PARTS 32

/* 0 if cl_json_filter_path can use filter (NULL and "" are usable: no filtering), or
 * -1 with a message that says what is wrong: longer than CL_JSON_FILTER_MAX_LEN, more
 * paths or parts than the bounds, or no path at all (only commas, spaces or '-'). */
int cl_json_filter_check(const char *filter, char *err, size_t errlen);

#endif
