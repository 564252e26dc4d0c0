"""Environment steps per second: single env, SyncVectorEnv(64) and the native vector env (64, 256)."""

from paintrnn.envs.benchmark import main

if __name__ == "__main__":
    main()
