#!/bin/bash -l
#BSUB -J sortie-pilot.0000
#BSUB -o /scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.out
#BSUB -e /scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.err
#BSUB -cwd /scratch/u/sortie.sandbox/session.0000/pilot.0000
#BSUB -W 1:30
#BSUB -n 64
#BSUB -R "span[ptile=32]"
#BSUB -gpu "num=1"
#BSUB -R "rusage[mem=500]"
#BSUB -q normal
#BSUB -P ABC123

cd '/scratch/u/sortie.sandbox/session.0000/pilot.0000' || exit 1
# preBootstrap (resource config)
module load nodejs/20
exec node agent.cjs agent.json
