#ifndef RL_LUA_SCRIPTS_H
#define RL_LUA_SCRIPTS_H

/* The decision library: the files of Makefile.am's RL_LUA_FILES (one per
 * algorithm, the compiled parts, then lua/decide.lua) concatenated at
 * build time (src/embed_lua.sh) into a Redis Function library whose one
 * function decides. Protocol: see store.h. */
extern const char RL_LUA_DECIDE[];

/* Its name, which is also its function's: "ratelimitd_" and 40 hex
 * digits (the SHA1 of the files). */
#define RL_LUA_FUNCTION_LEN 51
extern const char RL_LUA_FUNCTION[];

#endif
