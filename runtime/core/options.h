/* Command-line options: main.c parses them into its own cl_options and gives the Lua
 * state a pointer (cl_lua_set_options), which clusterlua.c.core hands to Lua. */
#ifndef CL_OPTIONS_H
#define CL_OPTIONS_H

typedef struct cl_options {
  const char *name;        /* --name NAME@HOST[:PORT]: node mode */
  const char *cookie;      /* --cookie (or CLUSTERLUA_COOKIE) */
  const char *cookie_file; /* --cookie-file */
  const char *keyring_file; /* --keyring-file */
  const char *data;        /* --data DIR */
  const char *admin;       /* --admin HOST:PORT */
  const char *admin_token_file;
  const char *roles;       /* --roles a,b */
  const char *initial_master_nodes;
  const char *log_format;  /* text|json */
  const char *log_level;
  const char *exe;         /* argv[0] resolved */
} cl_options;

#endif
