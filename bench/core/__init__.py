"""The floor every other floor stands on: the contract between harness and plug-ins (:mod:`.spec`),
the registries and their catalogue, rays and conditioning, the hypervolume, errors, the environment
(data root, device), atomic writes, the command-line kit and the lockstep records. Imports nothing of
``bench`` outside this folder."""
