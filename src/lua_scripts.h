#ifndef RL_LUA_SCRIPTS_H
#define RL_LUA_SCRIPTS_H

/* The decision script: the files of Makefile.am's RL_LUA_FILES (one per
 * algorithm, then lua/decide.lua) concatenated at build time
 * (src/embed_lua.sh). Protocol: see store.h. */
extern const char RL_LUA_DECIDE[];

#endif
