#ifndef RL_LUA_SCRIPTS_H
#define RL_LUA_SCRIPTS_H

/* The decision script: lua/{gcra,fixed_window,sliding_window,decide}.lua
 * concatenated at build time (src/embed_lua.sh). Protocol: see store.h. */
extern const char RL_LUA_DECIDE[];

#endif
